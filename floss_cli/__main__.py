from floss_cli import main

main()
