using MimeKit;
using Postern.MailAuth.Dmarc;

namespace Postern.MailAuth.Tests.Dmarc;

/// <summary>
/// The RFC5322.From domain (RFC 7489 §6.6.1), with OpenDMARC's test_finddomain.c shapes as the
/// conformance README restates them: each gives the right domain, and several addresses are reported
/// as such (with every domain, the first first) rather than silently reduced to the first.
/// </summary>
public sealed class AuthorDomainExtraction
{
    [Theory]
    [InlineData("Joe Johnson <joe@joe.example>")]
    [InlineData("\"Johnson, Joe <joe@evil.example>\" joe@joe.example")]
    [InlineData("\"Joe Johnson\" <joe@joe.example>")]
    [InlineData("(Joe Johnson) joe@joe.example")]
    [InlineData("joe@joe.example")]
    [InlineData("<<<><joe@joe.example>>>")]
    [InlineData("Mail From:<joe@joe.example>")]
    [InlineData("\"Mandel, Bob\" <joe@joe.example>")]
    [InlineData("(,) joe@joe.example")]
    [InlineData("\"( bob@bob.example)\" joe@joe.example")]
    [InlineData("From: Davide D'Marco <joe@joe.example>")]
    [InlineData("From: \"\\\"Micron Technology, Inc.\\\"\" <joe@joe.example>")]
    [InlineData("From: \"Joe J, <joe@evil.example>\" <joe@joe.example>")]
    [InlineData("joe@JOE.Example.")]
    [InlineData(" Joe\r\n Johnson\r\n\t<joe@joe.example> (work (really))")]
    [InlineData("<@relay.example,@other.example:joe@joe.example>")]
    [InlineData("\"joe@evil.example\"@joe.example")]
    [InlineData("Crew: joe@joe.example;")]
    [InlineData("=?utf-8?q?ceo=40bank.example_=3C?= <joe@joe.example>")]
    public void OneAuthor(string from)
    {
        var author = AuthorDomain.FromFieldValues([from]);
        Assert.Equal(AuthorProblem.None, author.Problem);
        Assert.Equal("joe.example", author.Domain);
        Assert.Equal(["joe.example"], author.Domains);
    }

    [Theory]
    [InlineData("Joe Johnson <joe@joe.example>, ace@ace.example")]
    [InlineData("joe@joe.example, ace@ace.example")]
    [InlineData("Crew: joe@joe.example, ace@ace.example;")]
    [InlineData("joe@joe.example, Crew: ace@ace.example;")]
    public void SeveralAddresses(string from)
    {
        var author = AuthorDomain.FromFieldValues([from]);
        Assert.Equal(AuthorProblem.MultipleAddresses, author.Problem);
        Assert.Null(author.Domain);
        Assert.Equal(["joe.example", "ace.example"], author.Domains);
    }

    [Fact]
    public void SeveralAddressesInOneDomainAreStillSeveral()
    {
        var author = AuthorDomain.FromFieldValues(["a@joe.example, b@Joe.Example"]);
        Assert.Equal(AuthorProblem.MultipleAddresses, author.Problem);
        Assert.Equal(["joe.example"], author.Domains);
    }

    [Fact]
    public void SeveralFromFields()
    {
        var author = AuthorDomain.FromFieldValues(["joe@joe.example", "ace@ace.example"]);
        Assert.Equal(AuthorProblem.MultipleFromFields, author.Problem);
        Assert.Equal(["joe.example", "ace.example"], author.Domains);
    }

    [Theory]
    [InlineData(AuthorProblem.NoFromField)]
    [InlineData(AuthorProblem.NoAddress, "")]
    [InlineData(AuthorProblem.NoAddress, "   ")]
    [InlineData(AuthorProblem.NoAddress, "(just a comment)")]
    [InlineData(AuthorProblem.NoAddress, "undisclosed-recipients:;")]
    [InlineData(AuthorProblem.NoDomain, "joe")]
    [InlineData(AuthorProblem.NoDomain, "joe@")]
    [InlineData(AuthorProblem.NoDomain, "Joe <joe>")]
    [InlineData(AuthorProblem.NoDomain, "joe@[192.0.2.1]")]
    [InlineData(AuthorProblem.NoDomain, "joe@mac...example")]
    [InlineData(AuthorProblem.NoDomain, "a@b.example@c.example")]
    [InlineData(AuthorProblem.NoDomain, "<joe@joe.example, ace@ace.example")]
    [InlineData(AuthorProblem.NoDomain, "<a@b.example@c.example>")]
    public void NoUsableDomain(AuthorProblem problem, params string[] from)
    {
        var author = AuthorDomain.FromFieldValues(from);
        Assert.Equal(problem, author.Problem);
        Assert.Null(author.Domain);
        Assert.Empty(author.Domains);
    }

    [Fact]
    public void InternationalizedDomainsComeOutAsALabels()
    {
        Assert.Equal("xn--bcher-kva.example", AuthorDomain.FromFieldValues(["jörg@Bücher.example"]).Domain);
        Assert.Equal("xn--bcher-kva.example", AuthorDomain.FromFieldValues(["<joe@xn--bcher-kva.example>"]).Domain);
    }

    [Fact]
    public void FromAMessageHeaderReadsTheRawFields()
    {
        using var message = MimeMessage.Load(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(
            "From: =?utf-8?q?ceo=40bank.example_=3C?=\r\n <joe@joe.example>\r\nTo: x@y.example\r\nSubject: hi\r\n\r\nbody\r\n")));
        var author = AuthorDomain.FromHeaders(message.Headers);
        Assert.Equal(AuthorProblem.None, author.Problem);
        Assert.Equal("joe.example", author.Domain);

        using var twice = MimeMessage.Load(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(
            "From: joe@joe.example\r\nFrom: ceo@bank.example\r\nSubject: hi\r\n\r\nbody\r\n")));
        Assert.Equal(AuthorProblem.MultipleFromFields, AuthorDomain.FromHeaders(twice.Headers).Problem);

        using var none = MimeMessage.Load(new MemoryStream(System.Text.Encoding.UTF8.GetBytes("Subject: hi\r\n\r\nbody\r\n")));
        Assert.Equal(AuthorProblem.NoFromField, AuthorDomain.FromHeaders(none.Headers).Problem);
    }
}
