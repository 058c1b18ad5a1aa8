-- failure path only: links.csv read again as text, for checks/links_first_problem (the view
-- links_text). record counts data rows from 1 in file order
select
    row_number() over () as record,
    *
from movielens_csv(
    $links_csv,
    {'movieId': 'VARCHAR', 'imdbId': 'VARCHAR', 'tmdbId': 'VARCHAR'}
)
