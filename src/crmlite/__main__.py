from crmlite.cli import main

main()
