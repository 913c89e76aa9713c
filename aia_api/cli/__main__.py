import sys

from aia_api.cli import main

sys.exit(main())
