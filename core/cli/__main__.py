from fulfil.core.cli import main

main()
