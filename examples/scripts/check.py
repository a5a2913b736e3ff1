"""Stand-in quality check: fails when the extracted row count looks wrong."""
import os
import sys

rows = int(os.environ.get("ROWS", "0"))
print(f"checking {rows} rows")
sys.exit(0 if rows > 0 else 1)
