from prebake.cli import main

main()
