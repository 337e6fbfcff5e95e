from github_org_backup.cli import main

raise SystemExit(main())
