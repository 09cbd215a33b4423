"""Map pages and their front-end assets (installed from npm, served by wangge itself)."""
