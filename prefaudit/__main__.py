from prefaudit.cli import main

main()
