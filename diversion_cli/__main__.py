from diversion_cli.cli import main

main()
