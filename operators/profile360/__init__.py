"""The customer 360 update: what one event changes in a customer's profile.

Owns the profile document (:mod:`.profile`), applying an event to it
(:mod:`.update`), identity linking (:mod:`.identity`), event-time windows
(:mod:`.windows`), the timeline (:mod:`.timeline`), read-time views such as
why-now and context carried (:mod:`.views`), contact-centre KPIs
(:mod:`.kpis`), the voice of the customer (:mod:`.voc`) and survey helpers
(:mod:`.surveys`).
"""
