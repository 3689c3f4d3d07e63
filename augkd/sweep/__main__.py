import sys

from augkd.sweep.cli import main

sys.exit(main())
