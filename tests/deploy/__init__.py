"""The deployment manifests (deploy/)."""
