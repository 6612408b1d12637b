"""Routes for generations and images (included in ``/api/v1/``)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from .generations import GenerationViewSet
from .images import ImageFileView, ImageViewSet
from .uploads import UploadViewSet

router = SimpleRouter(trailing_slash=False)
router.register("generations", GenerationViewSet, basename="generation")
router.register("images", ImageViewSet, basename="image")
router.register("uploads", UploadViewSet, basename="upload")

urlpatterns = [
    path("images/file/<str:token>", ImageFileView.as_view(), name="image-file"),
    *router.urls,
]
