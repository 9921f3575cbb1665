"""Pull-request validation: render every overlay, then check strict schemas (CRDs included),
policies, cross-references and generated-file freshness. Entry point: ``cli.main``."""
