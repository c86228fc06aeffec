from evota.cli import main

main()
