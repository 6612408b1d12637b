"""The automated quality gate (Django-free): judges behind one interface, the verdict, rule-based
refinement, and the evaluation of the built-in checks on a labelled set."""
