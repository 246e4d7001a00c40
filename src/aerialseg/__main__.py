from aerialseg.cli import main

raise SystemExit(main())
