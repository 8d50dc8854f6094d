from seal_agent.cli import main

main()
