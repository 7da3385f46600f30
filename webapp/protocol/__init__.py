"""What requests and answers hold, without Flask: JSON, validation, the V2 codec, the data plane."""
