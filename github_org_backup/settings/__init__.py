"""Settings: flags and environment variables into one typed, frozen value per command."""
