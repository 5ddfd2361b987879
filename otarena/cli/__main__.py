import sys

from otarena.cli import main

sys.exit(main())
