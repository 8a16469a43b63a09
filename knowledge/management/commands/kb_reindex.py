"""manage.py kb_reindex: index every article again (see knowledge.services.articles_reindex)."""

from django.core.management.base import BaseCommand

from knowledge.models import Article
from knowledge.services import articles_reindex


class Command(BaseCommand):
    help = "Split and index every article again, with the whole knowledge base's vocabulary."

    def handle(self, *args, **options):
        passages = articles_reindex()
        self.stdout.write(f"{Article.objects.count()} articles indexed again: {passages} passages.")
