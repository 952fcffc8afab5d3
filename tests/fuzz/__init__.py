"""Contract fuzzing of the service's own OpenAPI document (Schemathesis); `make fuzz` runs it long."""
