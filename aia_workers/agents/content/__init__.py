"""The content agent's work: structured input to a report in Markdown and HTML.

Heavy (scikit-learn, NLTK's VADER); imported inside ``ContentAgent.run``, never by the API.
"""
