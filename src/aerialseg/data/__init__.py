"""Reading datasets: class tables, sources (folder or zip), splits, training samples."""
