return Vlsm.Cli.VlsmCli.Run(args);
