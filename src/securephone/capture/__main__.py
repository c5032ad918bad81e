"""``python -m securephone.capture``: the ``securephone capture`` command on its own."""

from securephone.capture.cli import main

main()
