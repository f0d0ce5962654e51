"""The container image, built by .ci/image and driven from outside."""
