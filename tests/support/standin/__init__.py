"""The local TikTok stand-in: the site (`tiktok_site`, its HTML in `pages`) and the process around it
(`server.StandinServer`)."""
