from tl_bench.cli import main

main()
