"""``python -m vae_ood_monitor.cli`` (used by ``torchrun -m vae_ood_monitor.cli train ...``)."""

import sys

from vae_ood_monitor.cli.main import main

sys.exit(main())
