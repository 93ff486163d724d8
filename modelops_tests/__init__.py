"""The modelops test suite; one folder per room of the package."""
