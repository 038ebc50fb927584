from photoclass.cli import main

main()
