from localmode.runner import main

raise SystemExit(main())
