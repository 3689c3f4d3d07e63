import sys

from augkd.tune.cli import main

sys.exit(main())
