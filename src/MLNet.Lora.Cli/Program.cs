using MLNet.Lora.Cli;

return await CliApp.RunAsync(args);
