"""The terminal softphone (``securephone phone``): Textual, imported only by that command."""
