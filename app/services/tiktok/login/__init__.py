"""Login proof (SPEC §4): signal collectors that drive the page, pure readers, and one pure decide()."""
