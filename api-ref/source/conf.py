# API reference of nova-xloud, in the style of Nova's api-ref (os-api-ref).
extensions = ['os_api_ref']
source_suffix = '.rst'
master_doc = 'index'
project = 'nova-xloud API Reference'
copyright = '2026, nova-xloud developers'
html_theme = 'alabaster'
