"""The ``easel`` command line (``easel --help``)."""
