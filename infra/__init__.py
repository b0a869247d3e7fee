"""AWS resources of the hub: one CloudFormation fragment (`resources.json`), interpreted locally
(`local_resources`), merged into the deployable template (`template`, `package`)."""
