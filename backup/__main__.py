from backup.cli import main

raise SystemExit(main())
