"""The automated quality gate's judges that need no model: image checks in numpy and Pillow."""
