from prebake.cli import main

# Guarded: a process that multiprocessing spawns (vLLM's engine core does) imports this module again as
# __mp_main__, and must not start a second server.
if __name__ == "__main__":
    main()
