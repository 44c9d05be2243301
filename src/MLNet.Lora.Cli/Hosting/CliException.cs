namespace MLNet.Lora.Cli;

/// <summary>A user error (bad file, bad column, bad option value): printed as one line without a stack trace, exit code 1.</summary>
internal sealed class CliException(string message) : Exception(message);
