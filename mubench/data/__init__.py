"""Raw data: locating official files, verifying them, and parsing their formats."""
