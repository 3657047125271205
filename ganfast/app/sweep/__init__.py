"""Sweeps: many toy GANs at once (seeds x a grid of config values), scored as they train, on one
process or many (torchrun), with population-based training; `python -m ganfast.sweep`.

    cli        the command line (python -m ganfast.sweep, ganfast-sweep)
    grid       --grid flags -> cells (validated TrainConfigs)
    groups     members, engine groups (cells that train in one engine call) and the rank split
    run        SweepRun: the run protocol (ganfast.app.run) over the groups: train, score, PBT
    scoring    fresh-sample scores (ganfast.sample + ganfast.metrics), convergence, Wilson intervals
    pbt        exploit / explore on the population state
    dist       the processes (torch.distributed under torchrun)
    results    members.csv, trajectories.csv, summary.json, population.pt
    plots      the sweep's figures; report_md: report.md
"""
