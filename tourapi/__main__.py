from tourapi.cli import main

main()
