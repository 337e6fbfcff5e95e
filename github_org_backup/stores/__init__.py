"""Where images are read from and written to: the Store protocol, an OCI layout directory, a
registry over HTTP (stores.registry), and the factory that opens one per registry for a run."""
