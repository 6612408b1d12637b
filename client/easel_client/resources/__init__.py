"""One module per API area; each class is reached through an ``Easel`` client attribute."""
