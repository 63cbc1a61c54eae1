# Release notes of nova-xloud, built by reno from releasenotes/notes.
extensions = ['reno.sphinxext']
source_suffix = '.rst'
master_doc = 'index'
project = 'nova-xloud Release Notes'
copyright = '2026, nova-xloud developers'
version = ''
release = ''
exclude_patterns = []
html_theme = 'alabaster'
