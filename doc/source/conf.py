# Documentation of nova-xloud. The configuration and policy references are
# generated from the code through oslo.config's and oslo.policy's Sphinx
# extensions, so they cannot drift from the defaults.
extensions = [
    'oslo_config.sphinxext',
    'oslo_policy.sphinxext',
]
source_suffix = '.rst'
master_doc = 'index'
project = 'nova-xloud'
copyright = '2026, nova-xloud developers'
exclude_patterns = []
html_theme = 'alabaster'
