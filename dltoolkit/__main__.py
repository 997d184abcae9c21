from dltoolkit.cli import main

main()
