import sys

from mmcore.sim.emulator.app import main

sys.exit(main())
