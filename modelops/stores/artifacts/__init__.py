"""The artifact store: its interface (``base``), a local directory (``local``) and S3
(``s3``) backends, and ``open_store`` to pick one from a URI."""
