from deepkedi.cli import main

main()
